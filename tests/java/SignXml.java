// An enveloped XML signature (XMLDSig, W3C xmldsig-core1) made with the JDK's own XMLDSig API
// (javax.xml.crypto.dsig) over a key on a PKCS#11 token through SunPKCS11: RSA-SHA256 or
// ECDSA-SHA256 by the key's type, exclusive canonicalisation, the signer's certificate in
// KeyInfo/X509Data. JDK only; run as a single source file (Java 11+):
//   java SignXml.java SUNPKCS11-CONFIG PIN ALIAS IN.xml OUT.xml
// Used by tests/tests/java.rs, where `xmlsec1 verify` checks the result.
import java.io.File;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignatureMethod;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.keyinfo.KeyInfoFactory;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;
import org.w3c.dom.Document;

public class SignXml {
    public static void main(String[] a) throws Exception {
        if (a.length != 5) {
            System.err.println("usage: java SignXml.java SUNPKCS11-CONFIG PIN ALIAS IN.xml OUT.xml");
            System.exit(2);
        }
        Provider p11 = Security.getProvider("SunPKCS11").configure(a[0]);
        Security.addProvider(p11);
        KeyStore ks = KeyStore.getInstance("PKCS11", p11);
        ks.load(null, a[1].toCharArray());
        PrivateKey key = (PrivateKey) ks.getKey(a[2], null);
        X509Certificate cert = (X509Certificate) ks.getCertificate(a[2]);
        if (key == null || cert == null) {
            throw new IllegalArgumentException("no key and certificate with alias " + a[2]);
        }

        DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        dbf.setNamespaceAware(true);
        Document doc = dbf.newDocumentBuilder().parse(new File(a[3]));

        XMLSignatureFactory fac = XMLSignatureFactory.getInstance("DOM");
        Reference ref = fac.newReference(
                "",
                fac.newDigestMethod(DigestMethod.SHA256, null),
                List.of(
                        fac.newTransform(Transform.ENVELOPED, (TransformParameterSpec) null),
                        fac.newTransform(CanonicalizationMethod.EXCLUSIVE, (TransformParameterSpec) null)),
                null,
                null);
        String alg = key.getAlgorithm().equals("EC") ? SignatureMethod.ECDSA_SHA256 : SignatureMethod.RSA_SHA256;
        SignedInfo si = fac.newSignedInfo(
                fac.newCanonicalizationMethod(CanonicalizationMethod.EXCLUSIVE, (C14NMethodParameterSpec) null),
                fac.newSignatureMethod(alg, null),
                List.of(ref));
        KeyInfoFactory kif = fac.getKeyInfoFactory();
        KeyInfo ki = kif.newKeyInfo(List.of(kif.newX509Data(List.of(cert))));
        fac.newXMLSignature(si, ki).sign(new DOMSignContext(key, doc.getDocumentElement()));

        TransformerFactory.newInstance().newTransformer()
                .transform(new DOMSource(doc), new StreamResult(new File(a[4])));
        System.out.println("signed " + a[3] + " with " + alg + " (provider "
                + p11.getName() + "), signer " + cert.getSubjectX500Principal());
    }
}

// A relying party nobody here wrote: Java's own PKIX CertPathValidator, whole path,
// revocation checking on. Compiled with javac by tests/integration/test_relying_parties.py.
//
// java ValidatePath MODE ROOT.pem CERT.pem [INTERMEDIATE.pem ...]
//   MODE ocsp: OCSP first, CRLs (from the CRL distribution points) as the fallback
//   MODE crl:  CRLs only, no fallback
// Prints "VALID" (exit 0), or "INVALID <reason> <index> <message>" (exit 1).
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

public final class ValidatePath {
    private static X509Certificate read(CertificateFactory factory, String path) throws Exception {
        try (InputStream in = new FileInputStream(path)) {
            return (X509Certificate) factory.generateCertificate(in);
        }
    }

    public static void main(String[] args) throws Exception {
        // Without this property Java never fetches a CRL from a certificate's distribution point.
        System.setProperty("com.sun.security.enableCRLDP", "true");
        String mode = args[0];
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        X509Certificate root = read(factory, args[1]);
        List<X509Certificate> path = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            path.add(read(factory, args[i]));
        }
        CertPath certPath = factory.generateCertPath(path);
        CertPathValidator validator = CertPathValidator.getInstance("PKIX");
        PKIXRevocationChecker checker = (PKIXRevocationChecker) validator.getRevocationChecker();
        if (mode.equals("crl")) {
            checker.setOptions(EnumSet.of(
                PKIXRevocationChecker.Option.PREFER_CRLS, PKIXRevocationChecker.Option.NO_FALLBACK));
        } else if (mode.equals("ocsp")) {
            checker.setOptions(EnumSet.noneOf(PKIXRevocationChecker.Option.class));
        } else {
            throw new IllegalArgumentException("MODE must be ocsp or crl");
        }
        PKIXParameters parameters = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
        parameters.setRevocationEnabled(true);
        parameters.addCertPathChecker(checker);
        try {
            validator.validate(certPath, parameters);
            System.out.println("VALID");
        } catch (CertPathValidatorException e) {
            System.out.println("INVALID " + e.getReason() + " " + e.getIndex() + " " + e.getMessage());
            System.exit(1);
        }
    }
}
